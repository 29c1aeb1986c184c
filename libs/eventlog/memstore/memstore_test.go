package memstore_test

import (
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/conformance"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) eventlog.Store { return memstore.New(nil) }, conformance.AtomicBatches())
}
