BEGIN;
CREATE TABLE committed_itself (x int);
COMMIT;
