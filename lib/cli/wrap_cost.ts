/**
 * The scrypt cost of the passphrase wraps init, upgrade --encrypt and rekey make: the full
 * {@linkcode SCRYPT_COST} for operators. The test suite's task sets `CLN_BACKUP_TEST_SCRYPT_LOG_N`
 * so that its hundreds of encrypted inits and rekeys do not spend minutes in scrypt; the seam
 * takes only a cost readers accept, no higher than the default, and only where the environment
 * may be read (a permission-scoped launch never reads it).
 *
 * @module
 */
import { MIN_LOG_N, SCRYPT_COST, type ScryptCost } from "../crypto/wrapped_key.ts";
import type { EnvReader } from "../fs/user_path.ts";
import { readableEnv } from "../fs/readable_env.ts";

export const TEST_SCRYPT_LOG_N_ENV = "CLN_BACKUP_TEST_SCRYPT_LOG_N";

/** The cost of a new passphrase wrap. */
export function wrapCost(env: EnvReader = readableEnv): ScryptCost {
  const logN = Number(env.get(TEST_SCRYPT_LOG_N_ENV) ?? NaN);
  const taken = Number.isInteger(logN) && logN >= MIN_LOG_N && logN <= SCRYPT_COST.logN;
  return taken ? { ...SCRYPT_COST, logN } : SCRYPT_COST;
}
