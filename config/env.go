package config

import (
	"fmt"
	"strings"
)

// envProblem is one thing wrong with the ${...} references of a value.
type envProblem struct {
	unset string // the variable that is not set, or ""
	msg   string // otherwise, what is malformed
}

// expandEnv replaces ${NAME} with the variable's value and $$ with $. A $
// followed by anything else is kept, so passwords with a $ need no escaping
// unless a { follows. Values from the environment are inserted as they are,
// never expanded again. Every unset variable and malformed reference is
// returned.
func expandEnv(s string, lookup func(string) (string, bool)) (string, []envProblem) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var probs []envProblem
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				probs = append(probs, envProblem{msg: "a ${ has no closing }; write ${NAME}, or $$ for a literal $"})
				return b.String(), probs
			}
			name := s[i+2 : i+2+end]
			i += 2 + end
			if !validEnvName(name) {
				probs = append(probs, envProblem{msg: fmt.Sprintf("${%s} is not a variable reference; only ${NAME} is supported (letters, digits, _; no defaults or other shell forms), and $$ is a literal $", name)})
				continue
			}
			v, ok := lookup(name)
			if !ok {
				probs = append(probs, envProblem{unset: name})
				continue
			}
			b.WriteString(v)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), probs
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
