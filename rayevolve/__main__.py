from rayevolve.cli import main

main()
