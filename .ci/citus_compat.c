/*
 * CI only: three functions that the Citus build CI installs expects from its PostgreSQL
 * server and that Debian's postgresql-15 (15.18) does not export; .ci/run links this
 * into citus.so when, and only when, the installed server lacks them. A Citus from
 * Citus's own packages, built for the server it runs on, needs none of this.
 */
#include <stdbool.h>
#include <stdint.h>

extern bool superuser(void);
extern void *pg_detoast_datum(void *datum);

/* Who may CREATE DATABASE; Citus asks only when propagating one. Superusers, here. */
bool
have_createdb_privilege(void)
{
	return superuser();
}

/* The heap tuple header of a composite datum, detoasted: the macro of older servers. */
void *
DatumGetHeapTupleHeader(uintptr_t datum)
{
	return pg_detoast_datum((void *) datum);
}

/* A sanity check of newer servers' headers; this server has none to make. */
void
heap_datum_check(void *tuple, void *descriptor)
{
	(void) tuple;
	(void) descriptor;
}
