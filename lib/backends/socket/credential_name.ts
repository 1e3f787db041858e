/**
 * The name of a node's credential for a v2 backup server (credential.ts reads it), in a module
 * of its own so that what only names the file (backup.lock's checks, the launcher) does not
 * load wire v2's handshake.
 *
 * @module
 */

export const CREDENTIAL_NAME = "backup.credential";
