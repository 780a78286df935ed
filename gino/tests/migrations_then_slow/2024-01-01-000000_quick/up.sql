CREATE TABLE quick (x int);
