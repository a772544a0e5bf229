"""The benchmark harness: data generator, pgbench and wrk runs, and the report (see bench/README.md)."""
