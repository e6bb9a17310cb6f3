"""``python -m creditlab`` (and ``torchrun -m creditlab``) runs the CLI."""

from creditlab.cli import main

if __name__ == "__main__":
    main()
