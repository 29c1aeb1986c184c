// Package domain is routing's model, free of I/O: the classification policy
// and its evaluation, a complaint's routing state rebuilt from its events
// (Evolve), the decisions on it (classify, assign, escalate, the owner's
// handling up to resolution), team rosters and owner selection, and who may
// do what. Every decision is a plain function of state, input and time that
// returns the events to append or an error naming the field and the rule.
package domain
