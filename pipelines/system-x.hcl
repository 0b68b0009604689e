# System-X pipeline: ingests System-X, the in-house service inventory, with
# the JavaScript processor in scripts/system-x.js. `make run` loads every
# *.hcl file of this folder, so this pipeline runs next to example.hcl.
#
# Out of the box it works offline: the location below targets a JSON file in
# System-X's API format (testdata/system-x/services.json). Its services are
# owned by teams of the example catalog (testdata/catalog: payments, web,
# propulsion, flight-control), so their ownedBy relations land on real
# groups; the one team only System-X knows (ground-stations) becomes a Group
# of its own.
#
# To read a real System-X instead, replace the location and allow its host:
#
#   allow_hosts = ["system-x.internal.example"]
#   location "system-x" {
#     target = "https://system-x.internal.example"  # base URL; the script
#   }                                               # reads /api/v1/services
#
# Refreshes then send the ETag of the last answer: when nothing changed,
# System-X answers 304, the script re-emits what it cached and the catalog
# writes nothing.
pipeline "system-x" {
  # `read` in the script may only touch these folders (and hosts). Relative
  # paths resolve against this file's folder.
  allow_files = ["../testdata/system-x"]

  # A location of a custom type: the engine makes it a Location entity and
  # asks the stages, in order, to read it; only the system-x stage knows the
  # type. Its target is handed to the script verbatim, and the script's
  # `read` resolves a relative path against this file's folder.
  location "system-x" {
    target = "../testdata/system-x/services.json"
  }

  # Stages run in the order written here, for every entity.
  stage "placeholders" {}      # resolves $text / $json / $yaml
  stage "builtin-kinds" {}     # validates the builtin kinds, emits their relations
  stage "annotate-location" {} # adds backstage.io/managed-by-location and friends

  # A JavaScript stage: a `script` attribute makes a stage run that file.
  # Each hook call may take at most `timeout`, reads included; `config` is
  # the object the script sees as `config`.
  stage "system-x" {
    script  = "../scripts/system-x.js"
    timeout = "10s"
    config = {
      tierLabel = true # label every component system-x.example/tier
    }
  }
}
