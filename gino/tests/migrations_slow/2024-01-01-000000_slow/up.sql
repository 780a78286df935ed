SELECT pg_sleep(0.3);
CREATE TABLE IF NOT EXISTS slow (x int);
