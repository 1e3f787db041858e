/**
 * The name of the node's database in its network directory, where lightningd opens it unless
 * a `wallet=` line of its config names another file. A module of its own: the plugin's
 * advice names it without loading the restore.
 *
 * @module
 */

export const DATABASE_NAME = "lightningd.sqlite3";
