/**
 * The synchronous backup with asynchronous copies beside it (backup.lock's `async_urls`): the
 * hook's path is the synchronous one's alone; each change it stored is then handed to every
 * {@linkcode AsyncCopy}, which copies it in the background.
 *
 * @module
 */
import type { Backend, BackupState, Change } from "../backend.ts";
import type { AsyncCopy } from "./async_copy.ts";

export class WithAsyncCopies implements Backend {
  readonly url: string;

  constructor(readonly primary: Backend, readonly copies: AsyncCopy[]) {
    this.url = primary.url;
  }

  ready(): Promise<void> {
    return this.primary.ready?.() ?? Promise.resolve();
  }

  state(): BackupState {
    return {
      ...this.primary.state(),
      asyncDestinations: this.copies.map((copy) => copy.status()),
    };
  }

  async append(change: Change): Promise<void> {
    await this.primary.append(change);
    for (const copy of this.copies) copy.feed(change);
  }

  /** Only at the first write, before any copy starts (they start with the first change). */
  rewind(): Promise<void> {
    return this.primary.rewind();
  }

  cutTail(): Promise<string> {
    return this.primary.cutTail();
  }

  close(): void {
    this.primary.close();
    for (const copy of this.copies) copy.close();
  }
}
