import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gpt2Tokenizer } from '../src/lib/model/tokenizer.ts';
import { groupTokensForDisplay } from '../src/lib/model/token-display.ts';

const dir = join(import.meta.dirname, '../public/models/toy-planted');
const tokenizer = new Gpt2Tokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));

describe('tokens on screen', () => {
  it('draws a character split over several tokens once, with all its tokens in its group', () => {
    for (const text of ['Emoji 🦊 and 日本語, é́x', 'a👩‍👩‍👧b', 'plain words only', '\t\r\n  spaces\n']) {
      const tokens = tokenizer.encode(text);
      const groups = groupTokensForDisplay(tokens);
      // Every character exactly once, in order, and every token in exactly one group.
      expect(groups.map((g) => text.slice(g.start, g.end)).join('')).toBe(text);
      expect(groups.flatMap((g) => g.tokens)).toEqual(tokens.map((_, i) => i));
    }
    const text = 'Emoji 🦊 and 日本語';
    const groups = groupTokensForDisplay(tokenizer.encode(text)).map((g) => [text.slice(g.start, g.end), g.tokens.length]);
    expect(groups).toEqual([['E', 1], ['mo', 1], ['ji', 1], [' 🦊', 3], [' and', 1], [' 日', 3], ['本', 2], ['語', 2]]);
  });
});
