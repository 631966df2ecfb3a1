"""minigpt: a GPT built on minigrad, following the life of one token."""
