# One sample: keep the events above the threshold (scattered over the samples).
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/python:3.11-slim
baseCommand: [bash, -c]
arguments:
  - 'awk -v t="$0" ''$1 > t'' "$1" > selected-`basename "$1"`'
  - $(inputs.threshold)
  - $(inputs.sample.path)
inputs:
  sample: File
  threshold: float
outputs:
  selected:
    type: File
    outputBinding: {glob: "selected-*"}
