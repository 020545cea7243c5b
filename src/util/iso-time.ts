/** An epoch-ms instant as the ISO 8601 text that answers and listings show. */
export const iso = (ms: number): string => new Date(ms).toISOString()
