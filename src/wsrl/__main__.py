from wsrl.cli import main

main()
