/**
 * The lightningd plugin. lightningd starts it with the lightning dir (the network
 * directory) as its working directory; it reads `backup.lock` there and opens the backup
 * before it reads its first message, since `db_write` arrives before `init`.
 *
 * @module
 */
import { runPlugin } from "./lib/plugin/main.ts";

await runPlugin();
Deno.exit(0);
