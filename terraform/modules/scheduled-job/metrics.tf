################################################################################
# Run metrics: the agent writes them as embedded metric format lines into its own log stream (no API call,
# no permission beyond that stream; docs/metrics.md). Here: the alarm on peak memory and the dashboard.
# Every metric named below is one of ec2batch.metrics.METRICS (tests/terraform/test_metrics.py checks it).
################################################################################

locals {
  metrics_namespace = local.names.metrics_namespace
  metric_dimensions = ["job", var.job_name]

  # The instance catalogue (vCPUs, memory, price per hour) of ec2batch.cost, exported by
  # `python -m ec2batch.cost --catalogue` (a unit test keeps the file equal to the code's table).
  catalogue     = jsondecode(file("${path.module}/instance_catalogue.json"))
  prices        = lookup(local.catalogue.prices, local.region, local.catalogue.prices["us-east-1"])
  machine_type  = var.instance_types[0]
  machine       = lookup(local.catalogue.sizes, local.machine_type, null)
  machine_price = lookup(local.prices, local.machine_type, null)
  # The cheapest type with more memory and no fewer vCPUs: what the alarm's notification suggests. Sorted as
  # "<price padded> <name>" strings, since HCL sorts strings only.
  bigger_types = local.machine == null ? [] : sort([
    for name, size in local.catalogue.sizes : format("%010.4f %s", local.prices[name], name)
    if contains(keys(local.prices), name) && size.memory_gib > local.machine.memory_gib && size.vcpus >= local.machine.vcpus
  ])
  fitting_type = length(local.bigger_types) > 0 ? split(" ", local.bigger_types[0])[1] : null
  machine_text = local.machine == null ? local.machine_type : "${local.machine_type} (${local.machine.memory_gib} GiB, ${local.machine.vcpus} vCPUs)"
  fitting_text = local.fitting_type == null ? "no bigger type in ec2batch's catalogue: pick one with more memory" : format(
    "%s has %s GiB for %s$%.2f/h",
    local.fitting_type,
    local.catalogue.sizes[local.fitting_type].memory_gib,
    local.prices[local.fitting_type] >= coalesce(local.machine_price, 0) ? "+" : "-",
    abs(local.prices[local.fitting_type] - coalesce(local.machine_price, 0)),
  )

  dashboard_widgets = [
    { title = "Run duration (s)", metrics = [["RunDuration"]], stat = "Maximum", annotations = [] },
    { title = "Start lag: trigger to container start (s)", metrics = [["StartLag"]], stat = "Maximum", annotations = [] },
    {
      title       = "Peak memory, % of ${local.machine_text} or of limits.memory_mb"
      metrics     = [["PeakMemoryPercent"]]
      stat        = "Maximum"
      annotations = [{ label = "alarm", value = var.memory_alarm_threshold_percent }, { label = "all of it", value = 100 }]
    },
    {
      title       = "Peak CPU, % of the vCPUs"
      metrics     = [["PeakCpuPercent"]]
      stat        = "Maximum"
      annotations = [{ label = "all vCPUs", value = 100 }]
    },
    { title = "Cost per run (USD)", metrics = [["Cost"]], stat = "Sum", annotations = [] },
    {
      title       = "Runs by outcome"
      metrics     = [for outcome in ["SUCCEEDED", "FAILED", "TIMED_OUT", "INTERRUPTED"] : ["Runs", "outcome", outcome]]
      stat        = "Sum"
      annotations = []
    },
  ]
}

resource "aws_cloudwatch_metric_alarm" "memory" {
  alarm_name = "${local.base}-memory-peak"
  alarm_description = substr(join(" ", [
    "A run of ${var.job_name} peaked above ${var.memory_alarm_threshold_percent} % of its memory on ${local.machine_text}.",
    "Would fit: ${local.fitting_text}.",
    "Evidence over the last runs, and a fresh hint: ec2batch status ${var.job_name}.",
  ]), 0, 1024)
  namespace           = local.metrics_namespace
  metric_name         = "PeakMemoryPercent"
  dimensions          = { job = var.job_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.memory_alarm_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching" # a day without a run is not a memory problem
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.base
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title  = w.title
          region = local.region
          view   = "timeSeries"
          stat   = w.stat
          period = 300
          metrics = [
            for m in w.metrics : concat([local.metrics_namespace, m[0]], local.metric_dimensions, slice(m, 1, length(m)))
          ]
          annotations = { horizontal = w.annotations }
        }
      }
    ]
  })
}
