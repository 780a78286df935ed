CREATE TABLE mixed_a (x int);
