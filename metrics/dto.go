package metrics

import dto "github.com/prometheus/client_model/go"

type dtoMetric struct{ m dto.Metric }
