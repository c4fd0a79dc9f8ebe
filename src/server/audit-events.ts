import type { StoreChange } from '../store/index.js'
import type { AuditEntry } from '../protocol/calls.js'
import type { AuditEvent } from './audit-log.js'
import type { ServerContext } from './context.js'

// Every audit append also goes to the server log with the chain's new head: an operator who
// ships the log elsewhere holds an anchor (`admin audit verify --anchor N:HASH`) that a
// tamperer with the passphrase cannot rewrite.

/** Appends and waits: for actions whose answer must not come before their record. */
export async function audit(ctx: ServerContext, event: AuditEvent, changes: StoreChange[] = []): Promise<AuditEntry> {
  const entry = await ctx.audit.append(event, changes)
  ctx.logger.log('info', 'audit', { n: entry.n, action: entry.action, outcome: entry.outcome, hash: entry.hash })
  return entry
}

/** Appends without holding up the answer (failures: their timing must not depend on the store). */
export function auditBehind(ctx: ServerContext, event: AuditEvent): void {
  audit(ctx, event).catch((error: unknown) =>
    ctx.logger.log('error', 'audit_write_failed', { action: event.action, error: String(error) }),
  )
}
