import { StoreConflict } from '../store/index.js'

// Every rule that must hold across server processes on one store (a code used once, one name
// once, the last system_admin) is a read, a decision, and a commit that names in `expect` the
// versions the decision was read at. When another process committed first, the commit fails with
// StoreConflict and writes nothing; the decision is then made again on what is there now.

/** Times a read-decide-commit body runs before a conflict is given up as ERR_STORE_CONFLICT. */
export const CONFLICT_ATTEMPTS = 5

/** Runs `body` again (it reads afresh) while its commit meets a conflict, at most `attempts` times. */
export async function retryOnConflict<T>(body: () => Promise<T>, attempts = CONFLICT_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await body()
    } catch (error) {
      if (!(error instanceof StoreConflict) || attempt >= attempts) throw error
    }
  }
}
