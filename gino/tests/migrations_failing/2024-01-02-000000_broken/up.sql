CREATE TABLE half (x int);
INSERT INTO missing VALUES (1);
