from lem.cli import main

main()
