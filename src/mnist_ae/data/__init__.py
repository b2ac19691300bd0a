"""The prepare stage: find or download the four IDX files, prove their checksums, parse them."""
