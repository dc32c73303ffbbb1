/** Errors of the IndexedDB store; each message says what happened and what to do. */

/** A store operation that failed or was refused (bad input, missing scan, closed database). */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * The browser refused a write because the origin's storage quota is used up. The write was one
 * transaction, so nothing of it was kept.
 */
export class StorageFullError extends StoreError {
  constructor(
    readonly usedBytes: number | undefined,
    readonly quotaBytes: number | undefined,
    options?: { cause?: unknown },
  ) {
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    const usage =
      usedBytes !== undefined && quotaBytes !== undefined ? `: ${mb(usedBytes)} MB used of ${mb(quotaBytes)} MB` : '';
    super(`browser storage is full${usage}; delete a dataset or export it first`, options);
    this.name = 'StorageFullError';
  }
}

/** A scan bundle that cannot be read: not a bundle, corrupted, or from an unknown version. */
export class BundleError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleError';
  }
}

/** True for the DOMException a browser raises when the storage quota is exceeded. */
export function isQuotaError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, code } = error as { name?: unknown; code?: unknown };
  // Old WebKit used code 22 (QUOTA_EXCEEDED_ERR); Firefox once named it NS_ERROR_DOM_QUOTA_REACHED.
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED' || code === 22;
}
