/**
 * The time an upload is given beside a remote backup's timeout: its bytes at 128 KiB a
 * second (about 1 Mbit/s, a slow home uplink, or Tor). A change of 33.5 MB, the largest seen,
 * then has four and a half minutes more; a fixed bound would cut it off on every try and stop
 * the node.
 *
 * @module
 */

const SLOWEST_UPLOAD_BYTES_PER_S = 128 * 1024;

/**
 * Milliseconds to allow for sending `bytes`, on top of the timeout, in whole seconds: none up
 * to 128 KiB (the timeout covers those), so a small request's bound stays the timeout.
 */
export function uploadAllowanceMs(bytes: number): number {
  return Math.ceil(Math.max(0, bytes - SLOWEST_UPLOAD_BYTES_PER_S) / SLOWEST_UPLOAD_BYTES_PER_S) *
    1000;
}
