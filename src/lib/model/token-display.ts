/**
 * How tokens are laid out on screen. A character that byte-level BPE splits over several tokens
 * (an emoji, a CJK character, a combining mark) belongs to each of them (see tokenizer.ts): drawn
 * token by token it would appear several times ("🦊🦊🦊"). Tokens whose character spans overlap
 * are therefore shown as one group: its text once, its tokens marked inside it.
 */

export interface TokenSpan {
  start: number;
  end: number;
}

export interface DisplayGroup {
  /** Characters of the text this group shows: `text.slice(start, end)`. */
  start: number;
  end: number;
  /** Indices of the tokens it holds, in order (one for an ordinary token). */
  tokens: number[];
}

export function groupTokensForDisplay(tokens: readonly TokenSpan[]): DisplayGroup[] {
  const groups: DisplayGroup[] = [];
  tokens.forEach((t, i) => {
    const last = groups[groups.length - 1];
    if (last && t.start < last.end) {
      last.end = Math.max(last.end, t.end);
      last.tokens.push(i);
    } else {
      groups.push({ start: t.start, end: t.end, tokens: [i] });
    }
  });
  return groups;
}

/** Whitespace made visible, so that tokens such as "\n" or "  " can be seen and clicked. */
export function visibleWhitespace(text: string): string {
  return text.replace(/\r/g, '␍').replace(/\n/g, '↵\n').replace(/\t/g, '⇥');
}
