// Parsing JSON files with errors that name the file, line and column. V8's messages give
// a position for most syntax errors but not all ("Unexpected token 'x', ... is not valid
// JSON"), so a small grammar walk finds where the text stops being JSON.
import { VirtkitError } from '@virtkit/core';

class Stop {
  constructor(readonly at: number) {}
}

/** The offset where `text` first stops being valid JSON, text.length for a premature end, or -1 if valid. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (at = i): never => {
    throw new Stop(at);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined) fail();
      if (c === '"') {
        i++;
        return;
      }
      if (c! < ' ') fail();
      if (c === '\\') {
        const e = text[i + 1];
        if (e === undefined) fail(i + 1);
        if (e === 'u') {
          for (let k = 2; k < 6; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) fail(Math.min(i + k, text.length));
          i += 6;
        } else if ('"\\/bfnrt'.includes(e!)) {
          i += 2;
        } else {
          fail(i + 1);
        }
        continue;
      }
      i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const number = () => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail(text[i] === '-' ? i + 1 : i);
    i += m![0].length;
    // "1." or "1e": the regex stopped before an incomplete fraction or exponent.
    if (text[i] === '.' || text[i] === 'e' || text[i] === 'E') fail(i + 1);
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === undefined) fail();
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c! >= '0' && c! <= '9')) return number();
    for (const lit of ['true', 'false', 'null']) {
      if (lit[0] !== c) continue;
      let k = 0;
      while (k < lit.length && text[i + k] === lit[k]) k++;
      if (k === lit.length) {
        i += k;
        return;
      }
      fail(i + k);
    }
    fail();
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (e) {
    if (e instanceof Stop) return e.at;
    throw e;
  }
}

/** 1-based line and column of an offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/** JSON.parse with an INVALID_CONFIG error naming `label`, line and column. */
export function parseJsonText(text: string, label: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  try {
    return JSON.parse(body);
  } catch (e) {
    const raw = (e as Error).message;
    const m = / in JSON at position (\d+)/.exec(raw);
    let offset = m ? Number(m[1]) : jsonErrorOffset(body);
    if (offset < 0) offset = body.length;
    // V8: "Expected ',' or '}' after property value in JSON at position 42 (line 3 column 5)"
    // or "Unexpected token 'x', "...text..." is not valid JSON": keep only the description.
    const what = raw
      .replace(/ in JSON at position \d+.*$/s, '')
      .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '')
      .replace(/^Unexpected token '([\s\S])'$/, (_, c: string) => `Unexpected character ${JSON.stringify(c)}`);
    const { line, column } = lineColumn(body, offset);
    throw new VirtkitError('INVALID_CONFIG', `${label}: not valid JSON: ${what} at line ${line}, column ${column}`);
  }
}
