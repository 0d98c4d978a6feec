cwlVersion: v1.0
class: CommandLineTool

requirements:
  DockerRequirement:
    dockerPull: docker.io/library/bash:5.2

inputs:
  count_tool: File
  lines: int
  outfilename:
    type: string
    default: data.txt

baseCommand: /bin/sh

arguments:
  - $(inputs.count_tool.path)
  - $(inputs.lines)
  - $(inputs.outfilename)

outputs:
  data:
    type: File
    outputBinding:
      glob: $(inputs.outfilename)
