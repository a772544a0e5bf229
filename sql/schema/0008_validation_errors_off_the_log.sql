-- Keeps the error list of a validation error out of the server log. cards._raise_invalid
-- sends the list to the client as DETAIL (up to 100 entries) and, just before raising,
-- sets log_error_verbosity to terse for its own transaction, so the log gets the message
-- line only; the failed transaction's rollback restores the setting. The parameter is
-- superuser-only unless granted (PostgreSQL 15+): this grants it to the functions' owner.
-- Without the grant the list is still answered, only logged as well.
--
-- Needs a superuser, like the migrations that create roles and extensions.
-- (In a DO block only because the SQL linter does not know GRANT SET ON PARAMETER.)
DO $$
BEGIN
    EXECUTE 'GRANT SET ON PARAMETER log_error_verbosity TO cards_owner';
END
$$;
