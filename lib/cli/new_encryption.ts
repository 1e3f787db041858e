/**
 * A new encrypted backup's key, as init and upgrade --encrypt make it: a data key and backup id,
 * the key wrapped for the passphrase and recipients given.
 *
 * @module
 */
import type { NewEncryption } from "../backends/file/create.ts";
import { newBackupId } from "../format/segment.ts";
import { DataKey } from "../crypto/data_key.ts";
import { wrapCost } from "./wrap_cost.ts";
import { wrapKey } from "../crypto/wrapped_key.ts";
import {
  askNewPassphrase,
  checkNewPassphrase,
  checkNewRecipients,
  givenPassphrase,
  type Prompt,
} from "./secrets.ts";
import { INIT_ACTION as ACTION } from "./new_backup.ts";

/**
 * A new data key and backup id, the key wrapped for the passphrase and recipient given (the
 * passphrase asked twice on a terminal when neither is given).
 */
export async function newEncryption(
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  action = ACTION,
): Promise<NewEncryption> {
  const recipients = typeof values.recipient === "string" ? [values.recipient] : [];
  await checkNewRecipients(action, recipients);
  let passphrase = givenPassphrase(values["passphrase-file"]);
  if (passphrase === undefined && recipients.length === 0) {
    passphrase = await askNewPassphrase(prompt, "Passphrase for the backup's key", action);
  }
  checkNewPassphrase(action, passphrase);
  if (passphrase === undefined && recipients.length === 0) {
    throw new Error(
      `${action}: --encrypt needs a passphrase (CLN_BACKUP_PASSPHRASE, --passphrase-file FILE, ` +
        `or a terminal to ask on) or --recipient age1...: nothing was changed`,
    );
  }
  const key = await DataKey.generate();
  const backupId = newBackupId();
  const wrappedKey = await wrapKey(key, backupId, { passphrase, recipients }, wrapCost());
  return { key, backupId, wrappedKey };
}
