/**
 * A rule's condition: a boolean expression over its endpoints' event keys — `&&`, `||`, `!` and
 * parentheses, `!` binding tightest and `&&` before `||` — parsed once, at load.
 */
export type Condition =
  | { kind: 'key', key: string }
  | { kind: 'not', of: Condition }
  | { kind: 'and' | 'or', left: Condition, right: Condition }

/** A condition that does not parse: what is wrong, and where (a 1-based column). */
export class ConditionError extends Error {
  constructor (message: string, readonly column: number) {
    super(`${message} at column ${column}`)
  }
}

type Token = { kind: 'key', text: string, at: number } | { kind: '&&' | '||' | '!' | '(' | ')' | 'end', at: number }

const KEY = /[A-Za-z0-9_.-]/

function tokenize (text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === ' ' || c === '\t') {
      i++
    } else if (c === '(' || c === ')' || c === '!') {
      tokens.push({ kind: c, at: i + 1 })
      i++
    } else if ((c === '&' || c === '|') && text[i + 1] === c) {
      tokens.push({ kind: c === '&' ? '&&' : '||', at: i + 1 })
      i += 2
    } else if (KEY.test(c)) {
      const start = i
      while (i < text.length && KEY.test(text[i]!)) i++
      tokens.push({ kind: 'key', text: text.slice(start, i), at: start + 1 })
    } else {
      throw new ConditionError(`unexpected ${JSON.stringify(c)} (use event keys, &&, ||, ! and parentheses)`, i + 1)
    }
  }
  tokens.push({ kind: 'end', at: text.length + 1 })
  return tokens
}

/**
 * Parses `text`; every event key it names must be one of `keys`. Throws a ConditionError naming
 * the column of the first problem.
 */
export function parseCondition (text: string, keys: ReadonlySet<string>): Condition {
  const tokens = tokenize(text)
  let at = 0
  const peek = (): Token => tokens[at]!
  const describe = (t: Token): string => t.kind === 'key' ? `"${t.text}"` : t.kind === 'end' ? 'the end' : `"${t.kind}"`

  const or = (): Condition => {
    let left = and()
    while (peek().kind === '||') {
      at++
      left = { kind: 'or', left, right: and() }
    }
    return left
  }
  const and = (): Condition => {
    let left = unary()
    while (peek().kind === '&&') {
      at++
      left = { kind: 'and', left, right: unary() }
    }
    return left
  }
  const unary = (): Condition => {
    const t = peek()
    if (t.kind === '!') {
      at++
      return { kind: 'not', of: unary() }
    }
    if (t.kind === '(') {
      at++
      const inner = or()
      const close = peek()
      if (close.kind !== ')') throw new ConditionError(`expected ")" but found ${describe(close)}`, close.at)
      at++
      return inner
    }
    if (t.kind === 'key') {
      if (!keys.has(t.text)) throw new ConditionError(`"${t.text}" is not an event key of this rule (${[...keys].join(', ')})`, t.at)
      at++
      return { kind: 'key', key: t.text }
    }
    throw new ConditionError(`expected an event key, "!" or "(" but found ${describe(t)}`, t.at)
  }

  const condition = or()
  const rest = peek()
  if (rest.kind !== 'end') throw new ConditionError(`expected "&&", "||" or the end but found ${describe(rest)}`, rest.at)
  return condition
}

/** Every key, joined by `&&`: the condition of a rule that names none. */
export function allOf (keys: readonly string[]): Condition {
  return keys.map((key): Condition => ({ kind: 'key', key })).reduce((left, right) => ({ kind: 'and', left, right }))
}

/** Whether the condition holds, given which keys are satisfied. */
export function holds (condition: Condition, satisfied: (key: string) => boolean): boolean {
  switch (condition.kind) {
    case 'key': return satisfied(condition.key)
    case 'not': return !holds(condition.of, satisfied)
    case 'and': return holds(condition.left, satisfied) && holds(condition.right, satisfied)
    case 'or': return holds(condition.left, satisfied) || holds(condition.right, satisfied)
  }
}
