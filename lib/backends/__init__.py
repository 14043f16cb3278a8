"""The models behind the one interface: the built-in MNIST DDPM, DeepFloyd IF (configs, sources, loading, memory plan,
prompt embeddings), the model server's client and wire format, and the flow edition's PixNerd (``pixnerd``)."""
