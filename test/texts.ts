/** Texts that stress tokenisation and capture: emoji, code, whitespace runs, tabs, CRLF, non-Latin scripts. */
export const HARD_TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'Emoji: 🦊🦊 👩‍👩‍👧 🇫🇷 — and "quotes", too!',
  'def f(x):\n\treturn x  *  2   # tabs\tand   runs of spaces\n',
  'Windows line endings\r\nsecond line\r\n\r\nthird',
  '日本語のテキストと中文，한국어, Ελληνικά, русский, العربية, हिन्दी.',
  '    leading spaces and trailing   ',
  'x',
];
