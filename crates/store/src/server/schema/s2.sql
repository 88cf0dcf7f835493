-- Server schema 2 (issue 10): devices' public keys and certificates.
ALTER TABLE devices ADD COLUMN public_key BLOB;
ALTER TABLE devices ADD COLUMN cert BLOB;
