CREATE TABLE ok (x int);
