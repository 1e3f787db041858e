/**
 * The worker of read_ahead.ts: reads a file backup's entries and sends them to the restore.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { ByteChannel, ChannelCancelledError } from "../../fs/byte_channel.ts";
import { encodeEntry, encodeError, type ReadAheadRequest, STARTED } from "./read_ahead.ts";
import { FileBackupReader } from "./reader.ts";
import { DataKey } from "../../crypto/data_key.ts";

self.onmessage = async (event: MessageEvent<ReadAheadRequest>) => {
  const { url, dir, toVersion, key, shared } = event.data;
  const channel = new ByteChannel(shared);
  try {
    channel.send(...STARTED);
    const reader = new FileBackupReader(url, dir, {
      key: key && await DataKey.from(key),
      readAheadFrom: Infinity,
    });
    for (const entry of reader.storedEntries(toVersion)) channel.send(...encodeEntry(entry));
  } catch (error) {
    // After a cancel nobody reads: the restore stopped (done, or failed on its side).
    if (!(error instanceof ChannelCancelledError)) {
      try {
        channel.send(...encodeError(error));
      } catch { /* cancelled meanwhile */ }
    }
  } finally {
    channel.close();
    self.close();
  }
};
