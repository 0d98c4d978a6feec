# One sample: refuse a corrupt event (exit 3, saying which line), else keep the events
# above the threshold. tests/data/cwl-failing: sample-b.txt has a corrupt line.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/python:3.11-slim
baseCommand: [bash, -c]
arguments:
  - 'awk -v name="`basename "$1"`" ''$1 !~ /^[0-9.]+$/ {print name ": corrupt event on line " NR > "/dev/stderr"; exit 3}'' "$1" && awk -v t="$0" ''$1 > t'' "$1" > selected-`basename "$1"`'
  - $(inputs.threshold)
  - $(inputs.sample.path)
inputs:
  sample: File
  threshold: float
outputs:
  selected:
    type: File
    outputBinding: {glob: "selected-*"}
