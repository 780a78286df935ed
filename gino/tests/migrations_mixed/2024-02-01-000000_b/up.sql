ALTER TABLE mixed_a ADD COLUMN y int;
