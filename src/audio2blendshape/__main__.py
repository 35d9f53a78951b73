import sys

from audio2blendshape.cli.main import main

sys.exit(main())
