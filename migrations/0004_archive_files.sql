-- What archive scans have seen: lets a recurring scan skip re-hashing files whose size and mtime are unchanged.
CREATE TABLE archive_files (
    path           text        PRIMARY KEY,
    size_bytes     bigint      NOT NULL,
    modified_at    timestamptz NOT NULL,
    content_sha256 text        NOT NULL,
    seen_at        timestamptz NOT NULL DEFAULT now()
);
