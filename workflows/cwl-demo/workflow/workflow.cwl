# Two steps: select each sample's events above a threshold (a scatter), then summarise.
cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  samples: File[]
  threshold: float
  label: string
outputs:
  summary:
    type: File
    outputSource: summarise/summary
steps:
  select:
    run: select.cwl
    scatter: sample
    in:
      sample: samples
      threshold: threshold
    out: [selected]
  summarise:
    run: summarise.cwl
    in:
      label: label
      selected: select/selected
    out: [summary]
