"""``stoneforge demo``: the whole pipeline on one machine against fakehub.

``demo.sample`` loads the sample repository and the sprint filed against it (files shipped in
``demo/sample/``), ``demo.pipeline`` starts fakehub, the bot and a runner and files the sprint,
``demo.view`` shows what happens (it reads the pipeline through a protocol and does not import
it), and ``demo.run`` ties them together for the command line. The end-to-end tests and
``bench/dispatch.py`` drive the same pipeline.
"""
