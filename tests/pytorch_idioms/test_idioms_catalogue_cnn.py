"""The PyTorch-idiom catalogue (see test_idioms_catalogue.py), continued: convolutional
networks as the blitz's "training a classifier" and DCGAN-style code write them -- Conv2d,
MaxPool2d, AvgPool2d, BatchNorm, the device idiom, DataLoader over a TensorDataset, a
training loop with a running loss, saving and loading a state_dict, forward hooks, init by
class name -- with values compared to torch (the weights set the same way in both)."""
import math
import os
import tempfile

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom


def _wave(lib, shape, k=0.0, scale=0.1):
    """Deterministic, varied values of a shape: the same in both libraries."""
    n = math.prod(shape)
    return (lib.sin(lib.arange(n, dtype=lib.float32) * 1.7 + k) * scale).reshape(shape)


def _set_weights(lib, model):
    """Every parameter of model set to _wave values (in named_parameters order)."""
    with lib.no_grad():
        for k, (_, p) in enumerate(model.named_parameters()):
            p.copy_(_wave(lib, tuple(p.shape), k))
    return model


def _lenet(lib):
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = lib.flatten(x, 1)               # flatten all dimensions except batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)
    return Net()


# ================================================================================== the classifier
@idiom(rtol=1e-4)
def blitz_cifar_training_loop(lib):
    nn, optim = lib.nn, lib.optim
    net = _set_weights(lib, _lenet(lib))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    inputs_all = _wave(lib, (4, 2, 3, 32, 32), 0.3, 1.0)
    labels_all = lib.tensor([[3, 8, 8, 0], [6, 6, 1, 6]])
    running, logged = 0.0, []
    for epoch in range(2):
        for i in range(2):
            inputs, labels = inputs_all[2 * epoch + i], labels_all[i]
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
            if i % 2 == 1:
                logged.append(running / 2)
                running = 0.0
    return logged, net.conv1.weight.detach()[0, 0, 0], net.fc3.bias.detach()


@idiom(expect=(40, 10, True))
def blitz_classifier_test_accuracy(lib):
    net = _set_weights(lib, _lenet(lib))
    images = _wave(lib, (40, 3, 32, 32), 1.0, 1.0)
    labels = lib.arange(40) % 10
    correct = 0
    total = 0
    net.eval()
    with lib.no_grad():
        outputs = net(images)
        _, predicted = lib.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
    return total, outputs.shape[1], isinstance(correct, int) and 0 <= correct <= 40


@idiom(expect=("cpu", "cpu", True))
def blitz_device_idiom(lib):
    device = lib.device("cuda:0" if lib.cuda.is_available() else "cpu")
    net = _lenet(lib)
    net.to(device)
    inputs = lib.zeros(1, 3, 32, 32).to(device)
    out = net(inputs)
    return str(device), out.device.type, next(net.parameters()).device.type == device.type


@idiom(rtol=1e-4)
def blitz_save_and_load_the_state_dict(lib):
    net = _set_weights(lib, _lenet(lib))
    x = _wave(lib, (2, 3, 32, 32), 2.0, 1.0)
    with tempfile.TemporaryDirectory() as d:
        PATH = os.path.join(d, 'cifar_net.pth')
        lib.save(net.state_dict(), PATH)
        net2 = _lenet(lib)
        result = net2.load_state_dict(lib.load(PATH, weights_only=True))
    return (sorted(net2.state_dict().keys()), list(result.missing_keys),
            net2(x).detach(), bool((net2(x) == net(x)).all()))


# ============================================================================ layers against torch
@idiom(rtol=1e-4)
def conv2d_values_and_gradients(lib):
    F = lib.nn.functional
    x = _wave(lib, (2, 4, 7, 6), 0.5, 1.0).requires_grad_()
    w = _wave(lib, (6, 2, 3, 2), 1.5).requires_grad_()
    b = _wave(lib, (6,), 2.5).requires_grad_()
    y = F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    (y * _wave(lib, tuple(y.shape), 3.0)).sum().backward()
    return y, x.grad, w.grad, b.grad


@idiom(rtol=1e-4)
def conv1d_and_conv2d_same_padding(lib):
    nn = lib.nn
    c1 = _set_weights(lib, nn.Conv1d(2, 3, 3, padding=1))
    c2 = _set_weights(lib, nn.Conv2d(2, 3, 3, padding='same', bias=False))
    y1 = c1(_wave(lib, (1, 2, 6), 0.0, 1.0))
    y2 = c2(_wave(lib, (1, 2, 5, 5), 1.0, 1.0))
    return y1, tuple(y2.shape), y2[0, :, 2, 2]


@idiom(rtol=1e-5)
def max_pool_with_overlapping_windows(lib):
    F = lib.nn.functional
    x = _wave(lib, (1, 2, 5, 5), 0.2, 1.0).requires_grad_()
    y = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    y.sum().backward()
    return y, x.grad


@idiom(rtol=1e-5)
def avg_pool_and_adaptive_avg_pool(lib):
    nn, F = lib.nn, lib.nn.functional
    x = _wave(lib, (1, 1, 5, 5), 0.7, 1.0).requires_grad_()
    a = F.avg_pool2d(x, 2, stride=2, padding=1, count_include_pad=False)
    b = nn.AdaptiveAvgPool2d((3, 3))(x)
    c = nn.AdaptiveAvgPool2d(1)(x)
    (a.sum() + b.sum() + c.sum()).backward()
    return a, b, c, x.grad


@idiom(rtol=1e-4)
def batchnorm_running_statistics(lib):
    nn = lib.nn
    bn1 = nn.BatchNorm1d(3)
    bn2 = nn.BatchNorm2d(2, momentum=0.2)
    for k in range(3):
        bn1(_wave(lib, (8, 3), k, 2.0) + 1)
        bn2(_wave(lib, (4, 2, 3, 3), k, 1.0))
    bn1.eval()
    bn2.eval()
    return (bn1.running_mean, bn1.running_var, bn1(_wave(lib, (2, 3), 9.0)),
            bn2.running_var, bn2.num_batches_tracked.item(), sorted(bn1.state_dict().keys()))


@idiom(rtol=1e-4)
def batchnorm_gradients_in_training(lib):
    bn = lib.nn.BatchNorm1d(3)
    x = _wave(lib, (5, 3), 0.1, 2.0).requires_grad_()
    y = bn(x)
    (y * _wave(lib, (5, 3), 4.0)).sum().backward()
    return y, x.grad, bn.weight.grad, bn.bias.grad


# ============================================================================================ data
@idiom(expect=(3, [[0.0, 1.0], [2.0, 3.0]], [0, 1], (1, 2), 2))
def dataloader_over_a_tensor_dataset(lib):
    data = lib.utils.data
    X = lib.arange(10.0).view(5, 2)
    y = lib.arange(5)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=2, shuffle=False)
    batches = list(loader)
    xb, yb = batches[0]
    dropped = data.DataLoader(data.TensorDataset(X, y), batch_size=2, drop_last=True)
    return len(loader), xb, yb, tuple(batches[-1][0].shape), len(dropped)


@idiom(expect=(list(range(10)), 3, (7, 3)))
def dataloader_shuffle_and_random_split(lib):
    data = lib.utils.data
    ds = data.TensorDataset(lib.arange(10))
    seen = sorted(int(v) for (batch,) in data.DataLoader(ds, batch_size=4, shuffle=True)
                  for v in batch)
    train, val = data.random_split(ds, [7, 3])
    return seen, len(list(data.DataLoader(train, batch_size=3))), (len(train), len(val))


@idiom(expect=([0, 1, 2], [0.5, 1.5], ["a", "b"]))
def dataloader_default_collate_of_python_values(lib):
    data = lib.utils.data

    class Pairs(data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"n": i, "x": i + 0.5, "name": "abc"[i]}

    batch = next(iter(data.DataLoader(Pairs(), batch_size=3)))
    first = next(iter(data.DataLoader(Pairs(), batch_size=2)))
    return batch["n"], first["x"], first["name"]


# ================================================================================ modules and init
@idiom(expect=(["conv", "bn"], [(2, 4, 6, 6), (2, 4, 6, 6)], 1))
def forward_hooks_collect_activations(lib):
    nn = lib.nn
    model = nn.Sequential()
    model.conv = nn.Conv2d(1, 4, 3)
    model.bn = nn.BatchNorm2d(4)
    acts = {}

    def save(name):
        def hook(module, inputs, output):
            acts[name] = output.detach()
        return hook

    handles = [getattr(model, n).register_forward_hook(save(n)) for n in ("conv", "bn")]
    model(lib.zeros(2, 1, 8, 8))
    for h in handles:
        h.remove()
    calls = []
    model.conv.register_forward_pre_hook(lambda m, inp: calls.append(inp[0].shape))
    model(lib.zeros(1, 1, 8, 8))
    return list(acts), [tuple(a.shape) for a in acts.values()], len(calls)


@idiom(expect=(True, True, [0.0, 0.0]))
def dcgan_weights_init_by_class_name(lib):
    nn = lib.nn

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            nn.init.normal_(m.weight.data, 0.0, 0.02)
        elif classname.find('BatchNorm') != -1:
            nn.init.normal_(m.weight.data, 1.0, 0.02)
            nn.init.constant_(m.bias.data, 0)

    netD = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128))
    netD.apply(weights_init)
    w = netD[2].weight
    return (abs(w.std().item() - 0.02) < 0.002, abs(netD[3].weight.mean().item() - 1) < 0.01,
            netD[3].bias[:2].tolist())


@idiom(expect=(True, True))
def kaiming_init_of_conv_weights(lib):
    nn = lib.nn
    conv = nn.Conv2d(16, 32, 3)
    nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
    expected = math.sqrt(2.0 / (32 * 3 * 3))
    lin = nn.Linear(300, 200)
    nn.init.xavier_uniform_(lin.weight)
    bound = math.sqrt(6.0 / (300 + 200))
    return (abs(conv.weight.std().item() / expected - 1) < 0.05,
            lin.weight.abs().max().item() <= bound)


@idiom(expect=([[0.0, 0.0]], [[0.0, 0.0], [2.0, 2.0]]))
def embedding_padding_idx(lib):
    emb = lib.nn.Embedding(4, 2, padding_idx=0)
    out = emb(lib.tensor([[0, 1, 1]]))
    out.sum().backward()
    return emb.weight[:1].detach(), emb.weight.grad[:2]


@idiom(expect=(True, (2, 10)))
def compile_and_named_buffers(lib):
    net = lib.compile(_set_weights(lib, _lenet(lib)))
    bn = lib.nn.BatchNorm1d(2)
    names = [n for n, _ in bn.named_buffers()]
    return names == ["running_mean", "running_var", "num_batches_tracked"], tuple(
        net(lib.zeros(2, 3, 32, 32)).shape)


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
