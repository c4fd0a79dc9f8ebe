// The saved session moved to session.ts; this name stays while test/helpers/accounts.ts imports it.
export { saveSession, type SavedSession } from './session.js'
