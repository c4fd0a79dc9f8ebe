import { useInput } from 'ink'

/** Esc goes back (to the home menu, or out of a sub-step); inactive while a prompt owns the keys. */
export function useEscape(onEscape: () => void, isActive = true): void {
  useInput(
    (_input, key) => {
      if (key.escape) onEscape()
    },
    { isActive },
  )
}
