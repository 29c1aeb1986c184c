// Package domain is technician dispatch without I/O: technicians and work
// orders as pure decide/evolve functions over their events, the service-type
// checklists, and matching (hard filters, then a score) as a pure function.
// Time always comes in as an argument; nothing here reads a clock.
package domain
