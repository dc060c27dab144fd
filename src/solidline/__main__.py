from solidline.cli import main

main()
