ALTER TABLE users ADD COLUMN email text;
UPDATE users SET email = nickname || '@example.com';
