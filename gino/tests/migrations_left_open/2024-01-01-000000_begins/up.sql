BEGIN;
CREATE TABLE left_open (x int);
