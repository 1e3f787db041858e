/**
 * The lightningd plugin. lightningd starts it with the lightning dir (the network
 * directory) as its working directory; it reads `backup.lock` there, opens and checks the
 * backup and logs its state before it reads its first message, since `db_write` arrives
 * before `init`.
 *
 * @module
 */
import { runPlugin } from "./lib/plugin/main.ts";

await runPlugin();
Deno.exit(0);
