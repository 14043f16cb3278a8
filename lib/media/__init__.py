"""What the app shows and takes: images and plots, the whole-assignment report's HTML, uploads, text in words, the cost
of a computation, the bundled sample images."""
