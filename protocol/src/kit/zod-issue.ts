import type { z } from 'zod';

/** `['farms', 0, 'agentTokensSha256', 2]` → `farms[0].agentTokensSha256[2]`. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

/** The one problem of a failed parse worth reporting, as the key it concerns and a sentence about it. */
export interface IssueReport {
  /** `farms[0].seats`; empty when the whole value is at fault. */
  key: string;
  sentence: string;
}

/** How an unknown key is worded: as a bad key of a configuration (default) or a field of a record. */
export interface IssueWording {
  /** `key`: `a.b.typo: unknown key`; `field`: `a.b: unknown field "typo"`. */
  unknownKeys?: 'key' | 'field';
}

function isMissing(raw: unknown, path: readonly PropertyKey[]): boolean {
  if (path.length === 0) return raw === undefined;
  let parent: unknown = raw;
  for (const segment of path.slice(0, -1)) {
    if (typeof parent !== 'object' || parent === null) return false;
    parent = (parent as Record<PropertyKey, unknown>)[segment];
  }
  if (typeof parent !== 'object' || parent === null) return false;
  return (parent as Record<PropertyKey, unknown>)[path[path.length - 1] as PropertyKey] === undefined;
}

/**
 * Picks the issue of a zod error to report and words it. A misspelt key also makes its intended key
 * look missing, so an unknown key is reported first; given the raw input, a key that is absent is
 * reported as "is required" rather than with the type complaint zod gives it.
 */
export function reportIssue(error: z.ZodError, raw?: unknown, options: IssueWording = {}): IssueReport {
  const issue = error.issues.find((candidate) => candidate.code === 'unrecognized_keys') ?? error.issues[0];
  if (!issue) return { key: '', sentence: 'invalid' };
  if (issue.code === 'unrecognized_keys') {
    return options.unknownKeys === 'field'
      ? { key: issuePath(issue.path), sentence: `unknown field ${issue.keys.map((key) => `"${key}"`).join(', ')}` }
      : { key: issuePath([...issue.path, issue.keys[0] ?? '?']), sentence: 'unknown key' };
  }
  const sentence = raw !== undefined && isMissing(raw, issue.path) ? 'is required' : issue.message;
  return { key: issuePath(issue.path), sentence };
}

/**
 * A zod error as one line, `key: sentence`, the key under `prefix` when one is given
 * (`session.user: must not be blank`).
 */
export function formatIssue(
  error: z.ZodError,
  options: IssueWording & { prefix?: string; raw?: unknown } = {},
): string {
  const { key, sentence } = reportIssue(error, options.raw, options);
  const prefix = options.prefix ?? '';
  const path = prefix === '' ? key : key === '' ? prefix : key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`;
  return path === '' ? sentence : `${path}: ${sentence}`;
}
