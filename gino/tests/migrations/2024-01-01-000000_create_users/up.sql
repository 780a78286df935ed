CREATE TABLE users (
    id serial PRIMARY KEY,
    nickname text NOT NULL DEFAULT 'noname'
);
CREATE INDEX users_nickname_idx ON users (nickname);
